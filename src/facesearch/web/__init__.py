"""Server-rendered pages (Jinja2) with a little vanilla JavaScript; no build step."""
