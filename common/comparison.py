from django.db import models


class Comparison(models.TextChoices):
    LT = "lt", "less than"
    LE = "le", "less than or equal to"
    EQ = "eq", "equal to"
    GE = "ge", "greater than or equal to"
    GT = "gt", "greater than"


SYMBOLS = {"lt": "<", "le": "<=", "eq": "=", "ge": ">=", "gt": ">"}

COMPARE = {
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "eq": lambda a, b: a == b,
    "ge": lambda a, b: a >= b,
    "gt": lambda a, b: a > b,
}

# The ORM lookup that makes each comparison a filter.
LOOKUPS = {"lt": "lt", "le": "lte", "eq": "exact", "ge": "gte", "gt": "gt"}
