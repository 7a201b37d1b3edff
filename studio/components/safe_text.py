"""Messages that carry text a user typed or uploaded (a file name, a path, a topic), made safe
for the markdown that st.success / st.error / st.info / st.caption render: the characters that
would make a link, an image, emphasis or code are escaped, and bare URLs lose their autolink.
Text that stands alone (a topic, a note, a model answer) is drawn with `st.text` instead.
"""

from __future__ import annotations

import re

_SPECIAL = re.compile(r"([\\`*_\[\]()<>!#|~$])")
_AUTOLINK = {"://": "\\://", "www.": "www\\.", "@": "\\@"}  # GFM autolinks; each escaped


def md_escape(text: object) -> str:
    r"""`text` as literal markdown: no links, images, emphasis or HTML.

    >>> md_escape("[click](http://evil.example) *now*")
    '\\[click\\]\\(http\\://evil.example\\) \\*now\\*'
    """
    escaped = _SPECIAL.sub(r"\\\1", str(text))
    for plain, safe in _AUTOLINK.items():
        escaped = escaped.replace(plain, safe)
    return escaped
