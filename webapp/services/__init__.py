"""The seam between the website and the engine. One module per concern:

- ``intake``: check an upload, save it, and hand it to ``detections``;
- ``detections``: the one way to create detections of a stored file (one per model asked
  for) and queue them: uploads, batches, analysing again, files fetched from a link;
- ``storage``: files under the storage root (uploads, result folders), storage errors;
- ``jobs``: the queue interface, threads in the web process (default) or Celery;
- ``celery_app``: the Celery app, its settings and its task (the worker: ``webapp.tasks``);
- ``analysis``: one job: claim the row, run the engine, write artefacts and the row;
- ``recovery``: jobs of dead processes (and jobs never queued), orphaned files;
- ``presenters``: what views and the API show of a detection;
- ``formatting``: numbers as people see them (scores, charts, sizes, dates), for pages, API,
  CSV and PDF alike;
- ``compare``: one file judged by several models: analysing again, the side-by-side panel;
- ``batches``: several files at once (each through intake), the batch's items, totals, export;
- ``links``: a link's row(s), queued; ``downloads``: the worker fetching a link's file;
  ``fetching``: the address guard and pinned HTTP client; ``video_pages``: yt-dlp behind it;
- ``sharing``: share links of a result;
- ``report``: the PDF report;
- ``modelcard``: the installed models (the only way to the engine's registry), the default
  model's config, card and metrics;
- ``database``: the few database helpers that differ between SQLite and PostgreSQL.

Views call these; they never touch TensorFlow. The engine (``webapp.detection``) never
touches the database. Services never import views (blueprints, templating, forms) or the
factory; access rules (``webapp.owners``, ``webapp.auth``) and rows sit below them.
"""
