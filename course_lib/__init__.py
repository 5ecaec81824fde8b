"""The course's helper library: streaming loaders, throughput measurement and verification records."""
