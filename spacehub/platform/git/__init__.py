"""Git hosting: bare repositories, the smart-HTTP bridge and the post-receive hook."""
