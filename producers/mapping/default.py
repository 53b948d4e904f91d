"""The default map that ships with crmledger: a standard work4all Mandant into Dynamics 365 Sales.

``default_map.yaml`` covers every object of ARCHITECTURE.md section 5 with the Dataverse columns
of ``reference/dataverse-web-api.md`` (sections 4, 9, 10) and the work4all columns of
:mod:`producers.work4all.tables`. The proposer starts from it and adds what an installation has
on top (custom fields ``Feld<N>``, the ``Anrede`` codes of ``salutation``); a person reviews and
confirms the result. Choices made here:

- **w4a_sourcekey is a column of the map**, not implied: every object whose target can take
  custom columns declares ``w4a_sourcekey`` (``source_key`` transform, ``"<table>:<Code>"``,
  custom string of 100, required). So the value travels in every decision's payload and the
  writer needs no rule of its own to fill the alternate key, and the confirmed hash covers it.
  The declaration equals the one schema provisioning adds to every target table
  (:data:`producers.mapping.schema.SOURCE_KEY_COLUMN`), so the two never conflict. Notes
  (``annotation``) are the exception: Dataverse does not let anyone add columns to that table
  (``CanCreateAttributes`` false), so notes are addressed by their deterministic id alone.
- **settings.fallback_owner** is ``crm-migration@contoso.example``, a placeholder to replace
  with the e-mail of a real, enabled user before confirming; records whose work4all owner has
  no systemuser (or that have no owner column: suppliers, contacts) belong to that user, with a
  note. Left as it is, the owner cannot be resolved in the tenant and those writes fail loudly.
- **One record, one object.** The stage gives each source record to the first object whose
  filter takes it, so a table feeding two objects is split by filters: ``Positionen`` by
  ``BZObjType`` (6 quote lines, 7 invoice lines), ``Kontaktbericht`` by ``Uhrzeitbis`` (with an
  end time a completed appointment, else a note), ``Briefe`` by ``Art`` (1 e-mail, else a note).
- **Customers and suppliers** share ``account``: a supplier that is also a customer is merged
  by the stage into the customer's account, keeping only the columns the customer object does
  not set. So the source-type flags are split: customers set ``w4a_iscustomer``, suppliers
  ``w4a_issupplier`` (and ``w4a_iscustomer`` false, which a merge drops).
- **Units.** work4all units have no groups, and Dataverse creates a unit group's base unit
  itself (random id, named ``baseuomname``). So each ``Einheit`` becomes a unit group whose base
  unit is that unit, and no object targets ``uom``: the writer binds the group's base unit where
  Dataverse needs a unit (``product.defaultuomid``, ``productpricelevel.uomid``).
- **State after create.** ``statecode``/``statuscode`` columns give the state a record ends in;
  Dataverse creates records open and the writer sets the state afterwards (see
  :mod:`producers.mapping.transforms`).
- **Custom lookups** cannot be declared (the column types of :mod:`producers.mapping.model` have
  no lookup), so the open items refer to their account and invoice by source key text.
"""

from __future__ import annotations

from pathlib import Path

from producers.mapping.model import MigrationMap, load_map

DEFAULT_MAP_PATH = Path(__file__).with_name("default_map.yaml")
"""The YAML file of the default map (installed as package data)."""


def default_map() -> MigrationMap:
    """The default map, read and validated from :data:`DEFAULT_MAP_PATH`."""
    return load_map(DEFAULT_MAP_PATH)
