"""Domain rules between the web layer and the TaskBuffer: pure functions and tables, no I/O."""
