"""The emulator's content digest treats a column set to null like one never written, as
Dataverse (which has no absent columns) does: restoring a before-image gives back the digest."""

from __future__ import annotations

import httpx

from dataverse_emulator.server import RunningEmulator
from tests.emulator.conftest import api, emulator, new_key, token  # noqa: F401  (fixtures)


def _digest(emulator: RunningEmulator, api: httpx.Client) -> str:  # noqa: F811
    response = api.get(emulator.root_url.rstrip("/") + "/_emulator/digest?content=true")
    assert response.status_code == 200
    return str(response.json()["digest"])


def test_restoring_null_columns_and_clearing_a_lookup_give_back_the_content_digest(
    emulator: RunningEmulator,  # noqa: F811
    api: httpx.Client,  # noqa: F811
) -> None:
    account = api.post("accounts", json={"name": new_key()}).headers["OData-EntityId"]
    contact = api.post("contacts", json={"lastname": new_key()}).headers["OData-EntityId"]
    before = _digest(emulator, api)

    api.patch(account, json={"telephone1": "+49 1", "fax": "+49 2"})
    bind = {"parentcustomerid_account@odata.bind": account.split("/api/data/v9.2")[1]}
    api.patch(contact, json={"jobtitle": "Einkauf", **bind})
    changed = _digest(emulator, api)
    api.patch(account, json={"telephone1": None, "fax": None})
    api.patch(contact, json={"jobtitle": None})
    cleared = api.delete(contact + "/parentcustomerid_account/$ref")

    assert changed != before
    assert cleared.status_code == 204
    assert _digest(emulator, api) == before
