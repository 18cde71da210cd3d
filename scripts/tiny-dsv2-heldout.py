#!/usr/bin/env python3
"""Rebuilds tiny-dsv2's held-out text (Tests/Fixtures/tiny-dsv2/README.md, "Training data").

    apt-get install fortunes fortunes-min      # Debian 12: fortune-mod 1:1.99.1-7.3
    python3 scripts/tiny-dsv2-heldout.py > held-out.txt     # CPython 3.11's pydoc_data

Documents: every fortune (files of /usr/share/games/fortunes except ascii-art, split at "%"
lines, newlines stripped at both ends), then the pydoc help topics (sorted by name, stripped);
each held out when random.Random(20261122).random() < 0.05, in that order; joined by blank lines.
The result has the README's figures: 785 documents (778 fortunes, 7 topics), 175,245 bytes,
63,588 tokens; the fp32 model scores NLL 3.7238 on it (ctx 256, `dsv2 perplexity`).
"""
import os
import random
import sys

import pydoc_data.topics

FORTUNES = "/usr/share/games/fortunes"


def fortunes():
    names = sorted(f for f in os.listdir(FORTUNES)
                   if not f.endswith((".dat", ".u8")) and f != "ascii-art" and not os.path.islink(os.path.join(FORTUNES, f)))
    docs = []
    for name in names:
        text = open(os.path.join(FORTUNES, name), encoding="utf-8", errors="replace").read()
        current, parts = [], []
        for line in text.split("\n"):
            if line.strip() == "%":
                parts.append("\n".join(current))
                current = []
            else:
                current.append(line)
        parts.append("\n".join(current))
        docs += [p.strip("\n") for p in parts if p.strip()]
    return docs


def main():
    topics = [pydoc_data.topics.topics[k].strip() for k in sorted(pydoc_data.topics.topics)]
    docs = fortunes() + topics
    rng = random.Random(20261122)
    held = [d for d in docs if rng.random() < 0.05]
    sys.stdout.write("\n\n".join(held) + "\n")


if __name__ == "__main__":
    main()
