"""The faces pages read as English when English is chosen (through the real login)."""

from __future__ import annotations

from tests.conftest import Live
from tests.web.test_english import ALLOWED, CJK, _user_data


def test_faces_pages_in_english(live: Live) -> None:
    pid = live.grid.resident5.id
    user_data = _user_data(live)
    problems = []
    for role, urls in {
        "admin": ["/faces", f"/faces/people/{pid}", "/faces/compliance", "/audit"],
        "worker": ["/faces?q=林", f"/faces/people/{pid}"],
    }.items():
        client = live.client(role, lang="en")
        for url in urls:
            response = client.get(url)
            assert response.status_code == 200, url
            text = response.text
            for kept in (*ALLOWED, *user_data):
                text = text.replace(kept, "")
            left = sorted(set(CJK.findall(text)))
            if left:
                problems.append(f"{url}: {left[:8]}")
    assert not problems, "\n".join(problems)
