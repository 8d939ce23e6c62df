from sentry_autofix.cli import main

raise SystemExit(main())
