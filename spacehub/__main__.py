from spacehub.cli import main

raise SystemExit(main())
