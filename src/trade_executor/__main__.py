from trade_executor.cli import main

raise SystemExit(main())
