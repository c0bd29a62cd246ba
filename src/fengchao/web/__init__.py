"""Base templates, static assets and translations shared by every slice."""
