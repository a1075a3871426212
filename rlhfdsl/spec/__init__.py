"""The typed spec: what a checked `.rlhf` file means, and the contract with the backends.

Every block of the language is a frozen pydantic model here, whose fields are the block's keys,
with their types, ranges, defaults and documentation. The checker converts the syntax tree into
these models (reporting unknown keys, wrong types and out-of-range values with their spans);
backends read them and nothing else. `rlhfc schema --of spec` prints their JSON Schema.
"""

from rlhfdsl.spec.base import (  # noqa: F401
    Budget, Choice, Domain, Expr, FeatureSet, FileRef, IsExpr, Length, RefTo, SpecModel, Units,
)
from rlhfdsl.spec.experiment import (  # noqa: F401
    DECLARATIONS, SINGLETONS, BanditTask, Disclose, Evaluate, Experiment, Model, Schedule, Spec,
    TextTask,
)
from rlhfdsl.spec.feedback import Context, Feedback, Sampler, View  # noqa: F401
from rlhfdsl.spec.learning import Policy, Reward  # noqa: F401
from rlhfdsl.spec.population import AIEvaluator, Group, Malicious, Population  # noqa: F401
