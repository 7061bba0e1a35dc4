from batcher.cli import main

raise SystemExit(main())
