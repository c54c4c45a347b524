"""Names and audience weights for generated demo people (seed_demo and the benchmarks).

Plain data, importable before Django is set up.
"""

FIRST_NAMES = [
    "Amara", "Bruno", "Chloé", "Dmitri", "Elena", "Farah", "Gustavo", "Hana", "Idris", "Jade",
    "Kenji", "Lucía", "Mateo", "Nadia", "Oskar", "Priya", "Quentin", "Rosa", "Samuel", "Tamar",
    "Ugo", "Valentina", "Wei", "Ximena", "Yusuf", "Zofia",
]  # fmt: skip
LAST_NAMES = [
    "Abara", "Bianchi", "Costa", "Dubois", "Eriksen", "Fischer", "García", "Haddad", "Ivanova",
    "Jensen", "Kowalski", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Petrov", "Quinn", "Rossi",
    "Santos", "Tanaka", "Urban", "Vogel", "Wright", "Yilmaz", "Zhang",
]  # fmt: skip
# Roughly how a company's population splits across the policy's audiences.
AUDIENCE_WEIGHTS = {
    "employees": 55,
    "contractors": 20,
    "clients": 10,
    "partners": 10,
    "third-parties": 5,
}
