"""Small helpers every layer uses: atomic writes, JSON, names, tables. No torch, no zoo imports."""
