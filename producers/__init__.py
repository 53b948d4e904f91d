"""Turn the outside world into events: work4all readers, the generator, mapping and transforms."""
