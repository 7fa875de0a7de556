"""Pure core: the domain model, the consent rule and the planner. No I/O, no clock, no logging."""
