"""Pieces every room uses: study configuration, vocabulary, palette, file hashing, SQL helpers."""
