"""One blueprint per area of the site: pages, upload, results, history, api."""
