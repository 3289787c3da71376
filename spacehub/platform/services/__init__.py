"""Plain functions over a database Session: the domain operations routes and workers call."""
