"""Data: datasets by name, image folders and their layouts, safe downloads, and the
procedural `shapes` generator. Arrays in, arrays out; no model code lives here."""
