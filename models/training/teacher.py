"""`python -m models.training.teacher`: the teacher's pseudo-labels for the real clips
(edge_agent/tools/teacher.py, where the teacher lives so `edge-agent eval --teacher` can use it
on an install without the training code)."""

import sys

from edge_agent.tools.teacher import main

if __name__ == "__main__":
    sys.exit(main())
