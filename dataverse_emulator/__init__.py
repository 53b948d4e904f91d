"""A faithful local Dataverse Web API v9.2, the stand-in for a real tenant (built in issue 3)."""
