"""The map from work4all to Dataverse: format, transforms, proposer, gate, transform stage."""
