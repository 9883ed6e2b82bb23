"""Small helpers every layer uses: atomic writes, JSON, names, tables, logging, counts.

No torch, and nothing of zoo's but :mod:`zoo.errors`; import the module you need
(``from zoo._util.atomic import ...``): this package re-exports nothing.
"""

__all__: list[str] = []
