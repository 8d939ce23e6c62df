"""sentry-autofix: production errors to reviewed fix pull requests, inside your own CI."""

__version__ = "0.1.0"
