"""The parts of the writers (:mod:`consumers.write`): what to write and in what order
(``plan``), what a row becomes on the wire (``rows``), binds resolved in the tenant
(``resolve``) and ``$batch`` envelopes (``batch``)."""
