"""Teaching: the naive loaders the course warns against (the seed chapter's code, load-everything, one file per
sample), kept runnable so the chapters can measure them. Nothing here is meant to be copied."""
