"""Synthetic support prompts for a fictional project-management tool, drawn from topic templates.

Used by the tests, the false-alarm benchmark and the demo workspace: `sample(n, seed=...)` draws
from the base mix; `sample(n, shifted=True)` moves the mix towards topics the base barely has
(API/webhooks, SSO) and makes prompts longer, the way a new customer segment would.

>>> len(sample(5, seed=1)), sample(3, seed=1) == sample(3, seed=1)
(5, True)
"""

from __future__ import annotations

import numpy as np

TEMPLATES: dict[str, list[str]] = {
    "billing": [
        "Why was I charged twice for my {plan} plan this month?",
        "How do I download the invoice for {month}?",
        "Can I switch from monthly to yearly billing on the {plan} plan?",
        "My card was declined when upgrading to {plan}, what should I do?",
        "Please refund the extra seat we added in {month}.",
    ],
    "boards": [
        "How do I move a card from {column} to Done on my board?",
        "Can I rename the {column} column on a shared board?",
        "Cards in {column} disappeared after I filtered by label.",
        "How do I archive a board without losing its cards?",
        "Is there a limit on cards per column in {column}?",
    ],
    "account": [
        "I forgot my password and the reset email never arrives.",
        "How do I change the email address on my account?",
        "How can I delete my account and all my boards?",
        "Two-factor codes are rejected when I log in from my phone.",
        "Can I transfer ownership of my workspace to {name}?",
    ],
    "integrations": [
        "The Slack integration stopped posting updates from {column}.",
        "How do I connect my calendar so due dates show up?",
        "Can I import my tasks from a spreadsheet?",
    ],
    "api": [
        "Our webhook endpoint receives duplicate payloads with status 502 after a retry storm, "
        "how do we make the {column} events idempotent with the API token scopes?",
        "The REST API returns 429 rate limit errors when our integration paginates through "
        "{name}'s projects with cursor tokens; what is the documented quota per minute?",
        "How do we rotate OAuth client secrets for the API without breaking the webhook "
        "signature verification on our production server?",
    ],
    "sso": [
        "Our SAML single sign-on with Okta fails with an invalid audience error for {name}; "
        "which entity ID and ACS URL should the identity provider use?",
        "SCIM provisioning created duplicate users when we renamed the {column} group in Azure "
        "AD; how do we deprovision them?",
    ],
}
FILL = {
    "plan": ["Pro", "Team", "Business", "Starter"],
    "month": ["March", "April", "May", "June"],
    "column": ["To Do", "In Progress", "Review", "Backlog"],
    "name": ["Alice", "Bob", "Priya", "Chen"],
}
BASE_MIX = {"billing": 0.3, "boards": 0.3, "account": 0.3, "integrations": 0.1}
SHIFTED_MIX = {
    "billing": 0.1,
    "boards": 0.1,
    "account": 0.1,
    "integrations": 0.1,
    "api": 0.35,
    "sso": 0.25,
}


def sample(n: int, *, seed: int = 0, shifted: bool = False) -> list[dict[str, str]]:
    """`n` prompts as {"text", "topic"} dicts."""
    rng = np.random.default_rng(seed)
    mix = SHIFTED_MIX if shifted else BASE_MIX
    topics = list(mix)
    picks = rng.choice(len(topics), size=n, p=np.array(list(mix.values())))
    out = []
    for i in picks:
        topic = topics[i]
        text = TEMPLATES[topic][rng.integers(len(TEMPLATES[topic]))]
        text = text.format(**{k: v[rng.integers(len(v))] for k, v in FILL.items()})
        out.append({"text": text, "topic": topic})
    return out
