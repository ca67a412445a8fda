from trade_executor.cli.main import main

raise SystemExit(main())
