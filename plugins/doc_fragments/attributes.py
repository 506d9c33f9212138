# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Modules set `support` for each attribute; the descriptions live here once.
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check mode and return a changed status prediction without modifying the host.
  diff_mode:
    description: Returns the managed fields before and after the change (or the predicted change in check mode).
  idempotent:
    description:
      - When run twice in a row outside check mode with the same arguments, the second run reports no change.
"""

    # For info modules: nothing is ever modified.
    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check mode and return a changed status prediction without modifying the host.
    support: full
    details:
      - This module never modifies anything.
  diff_mode:
    description: Returns the managed fields before and after the change.
    support: N/A
    details:
      - This module never modifies anything.
  idempotent:
    description:
      - When run twice in a row with the same arguments, the second run reports no change.
    support: full
"""
