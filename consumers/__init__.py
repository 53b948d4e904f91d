"""Turn events into effects: the Dataverse client, writers, verifier and rollback."""
