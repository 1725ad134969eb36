"""Development entry point: ``flask --app app run`` (debug stays off unless you pass --debug)."""

from webapp import create_app

app = create_app()
