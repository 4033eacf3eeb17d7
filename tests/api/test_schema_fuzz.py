"""Schema-driven fuzzing of the API (schemathesis over the app's own OpenAPI schema, in
process): no generated request, valid or not, gets a server error. Requests go as the
seeded world's administrator, or as its supervisor where the administrator's role does
not reach the operation (search, faces, audit, rights). Bounded in examples per operation."""

from __future__ import annotations

import os
from collections import Counter

import pytest
from apiworld import PASSWORD

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

from facesearch.governance.auth import Role  # noqa: E402

# Examples per operation and generation mode; raise it for a longer hunt.
EXAMPLES = int(os.environ.get("FACESEARCH_TEST_SCHEMA_EXAMPLES", "10"))


class Callers:
    """Fresh credentials of a role whenever a fuzzed request revoked, demoted or
    deactivated the current ones, so the rest of the run stays authenticated."""

    def __init__(self, world) -> None:
        self.world = world
        self.headers = {role: world.as_(role.value) for role in Role}
        self.renewed = 0

    def check(self, role: Role) -> None:
        me = self.world.client.get("/api/auth/me", headers=self.headers[role])
        if me.status_code == 200 and me.json().get("role") == role.value:
            return
        services = self.world.services
        default = services.accounts.organisation_named("default")
        self.renewed += 1
        user, _ = services.auth.create_user(
            f"{role.value}{self.renewed}", default.id, role, PASSWORD,
            must_change_password=False,
        )  # fmt: skip
        secret, _ = services.auth.create_token(user, "schema fuzzing")
        self.headers[role] = {"Authorization": f"Bearer {secret}"}


def test_no_generated_request_gets_a_server_error(world):
    schema = schemathesis.openapi.from_dict(world.app.openapi())
    schema.app = world.app
    callers = Callers(world)
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30

    for operation in operations:
        role = Role.ADMINISTRATOR
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
            )  # fmt: skip
            @given(case=operation.as_strategy(generation_mode=mode))
            def send(case) -> None:
                nonlocal role
                for _ in range(2):
                    try:
                        headers = {**(case.headers or {}), **callers.headers[role]}
                        response = case.call(headers=headers)
                    except Exception as exc:  # the test client re-raises what the server raised
                        statuses[500] += 1
                        label = case.operation.label
                        failures.append(f"{label} raised {exc!r}: {case.as_curl_command()}")
                        return
                    statuses[response.status_code] += 1
                    if response.status_code == 403 and "role does not allow" in response.text:
                        role = Role.SUPERVISOR  # has every permission the administrator lacks
                        continue
                    break
                if response.status_code >= 500:
                    failures.append(
                        f"{case.operation.label} -> {response.status_code}: "
                        f"{case.as_curl_command()}\n{response.text[:300]}"
                    )
                elif response.status_code in (401, 403):
                    callers.check(role)

            try:
                send()
            except Unsatisfiable:  # nothing to break: no parameters, or none can be invalid
                continue
    total = sum(statuses.values())
    print(f"schemathesis: {total} requests, statuses {dict(sorted(statuses.items()))}")
    assert not failures, "\n\n".join(failures[:10])
    assert total > len(operations) * 10
    # Both sides were exercised: accepted requests and refused ones.
    assert sum(n for code, n in statuses.items() if code < 300) > 50
    assert sum(n for code, n in statuses.items() if 400 <= code < 500) > 100
