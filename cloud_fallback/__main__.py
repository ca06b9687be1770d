from cloud_fallback.cli import main

raise SystemExit(main())
