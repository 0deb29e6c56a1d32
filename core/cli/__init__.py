"""Layer 10, the command line: `flowscope train | sample | eval | info | reflow | zoo | ui`."""

__all__: list[str] = []
