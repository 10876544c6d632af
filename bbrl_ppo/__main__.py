"""``python -m bbrl_ppo`` is the ``bbrl-ppo`` command."""

import sys

from bbrl_ppo.cli import main

sys.exit(main())
