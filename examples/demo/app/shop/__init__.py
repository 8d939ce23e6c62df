"""A tiny shop: the demo app sentry-autofix triages and fixes."""
