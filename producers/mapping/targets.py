"""Standard Dataverse columns a proposal may target, per table, with their types and limits.

From ``shared/reference/dataverse-web-api.md`` section 10 and the Microsoft entity references.
Only columns a work4all value can sensibly fill are listed; lookups, state and system columns are
left to the default map. ``concept`` names the :data:`producers.mapping.similarity.CONCEPTS`
entry the column stands for.
"""

from __future__ import annotations

from dataclasses import dataclass

from producers.mapping.model import ColumnType


@dataclass(frozen=True, slots=True)
class TargetColumn:
    """One standard column of a Dataverse table."""

    name: str
    type: ColumnType
    concept: str
    max_length: int | None = None


def _s(name: str, concept: str, max_length: int) -> TargetColumn:
    return TargetColumn(name, "string", concept, max_length)


_ADDRESS = (
    _s("address1_line1", "street", 250),
    _s("address1_city", "city", 80),
    _s("address1_postalcode", "postcode", 20),
    _s("address1_country", "country", 80),
    _s("address1_fax", "fax", 50),
)
_ACTIVITY = (
    _s("subject", "name", 200),
    TargetColumn("description", "memo", "notes"),
    TargetColumn("scheduledstart", "datetime", "start"),
    TargetColumn("scheduledend", "datetime", "end"),
    TargetColumn("actualstart", "datetime", "start"),
    TargetColumn("actualend", "datetime", "end"),
    TargetColumn("overriddencreatedon", "datetime", "created"),
)

CATALOGUE: dict[str, tuple[TargetColumn, ...]] = {
    "account": (
        _s("name", "company", 160),
        _s("accountnumber", "number", 20),
        _s("telephone1", "phone", 50),
        _s("telephone2", "phone2", 50),
        _s("fax", "fax", 50),
        _s("emailaddress1", "email", 100),
        _s("emailaddress2", "email2", 100),
        _s("websiteurl", "website", 200),
        *_ADDRESS,
        TargetColumn("revenue", "money", "revenue"),
        TargetColumn("numberofemployees", "integer", "employees"),
        TargetColumn("creditlimit", "money", "creditlimit"),
        TargetColumn("description", "memo", "notes"),
        TargetColumn("donotemail", "boolean", "donotemail"),
        TargetColumn("donotbulkemail", "boolean", "donotbulk"),
        TargetColumn("overriddencreatedon", "datetime", "created"),
    ),
    "contact": (
        _s("firstname", "firstname", 50),
        _s("lastname", "lastname", 50),
        _s("middlename", "middlename", 50),
        _s("jobtitle", "jobtitle", 100),
        _s("department", "department", 100),
        _s("salutation", "salutation", 100),
        _s("suffix", "title", 10),
        _s("telephone1", "phone", 50),
        _s("telephone2", "phone2", 50),
        _s("mobilephone", "mobile", 50),
        _s("fax", "fax", 50),
        _s("emailaddress1", "email", 100),
        _s("emailaddress2", "email2", 100),
        _s("websiteurl", "website", 200),
        *_ADDRESS,
        TargetColumn("birthdate", "dateonly", "birthdate"),
        TargetColumn("description", "memo", "notes"),
        TargetColumn("donotemail", "boolean", "donotemail"),
        TargetColumn("donotbulkemail", "boolean", "donotbulk"),
        TargetColumn("overriddencreatedon", "datetime", "created"),
    ),
    "product": (
        _s("name", "name", 100),
        _s("productnumber", "number", 100),
        TargetColumn("description", "memo", "notes"),
        TargetColumn("price", "money", "price"),
        TargetColumn("standardcost", "money", "cost"),
        TargetColumn("currentcost", "money", "cost"),
        TargetColumn("overriddencreatedon", "datetime", "created"),
    ),
    "opportunity": (
        _s("name", "name", 300),
        TargetColumn("estimatedvalue", "money", "value"),
        TargetColumn("estimatedclosedate", "dateonly", "due"),
        TargetColumn("closeprobability", "integer", "probability"),
        TargetColumn("budgetamount", "money", "revenue"),
        TargetColumn("description", "memo", "notes"),
        TargetColumn("overriddencreatedon", "datetime", "created"),
    ),
    "quote": (
        _s("name", "name", 300),
        _s("quotenumber", "number", 100),
        TargetColumn("description", "memo", "notes"),
        TargetColumn("effectivefrom", "dateonly", "start"),
        TargetColumn("effectiveto", "dateonly", "end"),
        TargetColumn("overriddencreatedon", "datetime", "created"),
    ),
    "quotedetail": (
        _s("productdescription", "name", 500),
        TargetColumn("quantity", "decimal", "quantity"),
        TargetColumn("priceperunit", "money", "price"),
        TargetColumn("tax", "money", "tax"),
        TargetColumn("lineitemnumber", "integer", "number"),
    ),
    "opportunityproduct": (
        _s("productdescription", "name", 500),
        TargetColumn("quantity", "decimal", "quantity"),
        TargetColumn("priceperunit", "money", "price"),
        TargetColumn("tax", "money", "tax"),
    ),
    "phonecall": (*_ACTIVITY, _s("phonenumber", "phone", 200)),
    "task": _ACTIVITY,
    "appointment": (*_ACTIVITY, _s("location", "location", 200)),
    "email": (*_ACTIVITY,),
    "annotation": (
        _s("subject", "name", 500),
        TargetColumn("notetext", "memo", "notes"),
        _s("filename", "name", 255),
    ),
}
"""Standard columns per Dataverse table (logical name)."""


def catalogue(table: str) -> tuple[TargetColumn, ...]:
    """The standard columns of Dataverse table ``table`` that proposals may target."""
    return CATALOGUE.get(table, ())
