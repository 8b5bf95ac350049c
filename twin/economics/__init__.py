"""Economics: a node's mass budget, capital and operating costs, the ledger a run keeps,
its KPIs and the terrestrial reference (docs/models.md, "Economics").

``StaticEconomics.from_scenario`` holds what follows from the tables alone; ``RunLedger``
keeps a run's books; ``kpis`` turns them into $/PFLOP-day and the rest.
"""

from twin.economics.budget import (
    CapitalCost,
    MassBudget,
    NodeDesign,
    StaticEconomics,
    capital_cost,
    mass_budget,
)
from twin.economics.kpis import binding_limit, kpis, operating_cost_usd, terrestrial_cost_usd
from twin.economics.ledger import RunLedger
from twin.economics.params import (
    LAUNCH_PRESETS_USD_PER_KG,
    EconomicsParams,
    TerrestrialParams,
    economics_params,
)

__all__ = [
    "LAUNCH_PRESETS_USD_PER_KG", "CapitalCost", "EconomicsParams", "MassBudget", "NodeDesign",
    "RunLedger", "StaticEconomics", "TerrestrialParams", "binding_limit", "capital_cost",
    "economics_params", "kpis", "mass_budget", "operating_cost_usd", "terrestrial_cost_usd",
]
