"""Score the guided chat's understanding against the utterance corpus, and print the misses.

    .venv/bin/python bench/guided_corpus.py

Pure Python (no database): chatdesk.assistant.understanding.understand() against tests/guided_corpus.py,
with the demo business's services and keywords from seed_demo.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")


def main() -> None:
    import django

    django.setup()
    from tests.guided_corpus import ALL, HELD_OUT, score

    share, failed = score()
    for text, wrong in failed:
        print(f"MISS {text!r}")
        for line in wrong:
            print(f"     {line}")
    print(f"\nUnderstood {len(ALL) - len(failed)} of {len(ALL)} messages: {share:.1%}")
    held_share, held_failed = score(HELD_OUT)
    print(f"Of which the later-written batch: {len(HELD_OUT) - len(held_failed)} of {len(HELD_OUT)}: {held_share:.1%}")


if __name__ == "__main__":
    main()
