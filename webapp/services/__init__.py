"""The seam between the website and the engine. One module per concern:

- ``intake``: check an upload, save it, create its row (one per model asked for) and queue it;
- ``storage``: files under the storage root (uploads, result folders), storage errors;
- ``jobs``: the queue interface, threads in the web process (default) or Celery;
- ``analysis``: one job: claim the row, run the engine, write artefacts and the row;
- ``recovery``: jobs of dead processes, orphaned files;
- ``presenters``: what views and the API show of a detection;
- ``compare``: one file judged by several models: analysing again, the side-by-side panel;
- ``batches``: several files at once (each through intake), the batch's items, totals, export;
- ``links``: a link's row(s), queued; ``downloads``: the worker fetching a link's file;
  ``fetching``: the address guard and pinned HTTP client; ``video_pages``: yt-dlp behind it;
- ``modelcard``: the model's config, card and metrics as the pages show them;
- ``database``: the few database helpers that differ between SQLite and PostgreSQL.

Views call intake, presenters and storage; they never touch TensorFlow. The engine
(``webapp.detection``) never touches the database.
"""
