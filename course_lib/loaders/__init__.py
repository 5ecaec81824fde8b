"""Loaders: everything that decides who reads what (the epoch plan) and reads it (memory maps, WebDataset tars,
HTTP, the device). A new way of reading data belongs here."""
