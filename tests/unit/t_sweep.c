/* t_sweep.c: unit tests of common/sweep.c: liveness keys, container names, notification flags. */
#include "tests/unit/t.h"

#include "common/sweep.h"

void
test_sweep__liveness_id(void)
{
	char id[40];

	T_CHECK(sweep_liveness_id("ws:3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b", id, sizeof(id)) == 0);
	T_STREQ(id, "3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b");
	T_CHECK(sweep_liveness_id("ws:3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b:url", id, sizeof(id)) == -1);
	T_CHECK(sweep_liveness_id("ws:3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b:internal_url", id, sizeof(id)) == -1);
	T_CHECK(sweep_liveness_id("ws:3F2A1B4C-5D6E-4F70-8A9B-0C1D2E3F4A5B", id, sizeof(id)) == -1);
	T_CHECK(sweep_liveness_id("molecule:liveness:epoch", id, sizeof(id)) == -1);
	T_CHECK(sweep_liveness_id("ws:", id, sizeof(id)) == -1);
	T_CHECK(sweep_liveness_id(NULL, id, sizeof(id)) == -1);
	T_CHECK(sweep_liveness_id("ws:3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b", id, 20) == -1);
}

void
test_sweep__container_prefix(void)
{
	char p[16];

	T_CHECK(sweep_container_prefix("/ws-3f2a1b4c-5d6", p, sizeof(p)) == 0);
	T_STREQ(p, "3f2a1b4c-5d6");
	T_CHECK(sweep_container_prefix("ws-abcdef012345", p, sizeof(p)) == 0);
	T_STREQ(p, "abcdef012345");
	T_CHECK(sweep_container_prefix("ws-abcdef01234", p, sizeof(p)) == -1);
	T_CHECK(sweep_container_prefix("ws-abcdef0123456", p, sizeof(p)) == -1);
	T_CHECK(sweep_container_prefix("ws-abcdef01234%", p, sizeof(p)) == -1);
	T_CHECK(sweep_container_prefix("ws-ABCDEF012345", p, sizeof(p)) == -1);
	T_CHECK(sweep_container_prefix("/other-abcdef012345", p, sizeof(p)) == -1);
	T_CHECK(sweep_container_prefix("ws-abcdef012345", p, 12) == -1);
	T_CHECK(sweep_container_prefix(NULL, p, sizeof(p)) == -1);
}

void
test_sweep__volume_prefix(void)
{
	char p[16];

	T_CHECK(sweep_volume_prefix("ws-3f2a1b4c-5d6-configs", p, sizeof(p)) == 0);
	T_STREQ(p, "3f2a1b4c-5d6");
	T_CHECK(sweep_volume_prefix("ws-abcdef012345-claude-sessions", p, sizeof(p)) == 0);
	T_STREQ(p, "abcdef012345");
	T_CHECK(sweep_volume_prefix("ws-abcdef012345", p, sizeof(p)) == -1);
	T_CHECK(sweep_volume_prefix("ws-abcdef012345-workspace", p, sizeof(p)) == -1);
	T_CHECK(sweep_volume_prefix("ws-abcdef01234-configs", p, sizeof(p)) == -1);
	T_CHECK(sweep_volume_prefix("ws-ABCDEF012345-configs", p, sizeof(p)) == -1);
	T_CHECK(sweep_volume_prefix("ws-abcdef012345-configsx", p, sizeof(p)) == -1);
	T_CHECK(sweep_volume_prefix("data", p, sizeof(p)) == -1);
	T_CHECK(sweep_volume_prefix(NULL, p, sizeof(p)) == -1);
}

void
test_sweep__notify_flags(void)
{
	char out[32];

	T_CHECK(sweep_notify_flags("", out, sizeof(out)) == 1);
	T_STREQ(out, "Ex");
	T_CHECK(sweep_notify_flags("Ex", out, sizeof(out)) == 0);
	T_STREQ(out, "Ex");
	T_CHECK(sweep_notify_flags("KEA", out, sizeof(out)) == 0);
	T_CHECK(sweep_notify_flags("Kg", out, sizeof(out)) == 1);
	T_STREQ(out, "KgEx");
	T_CHECK(sweep_notify_flags("xE", out, sizeof(out)) == 0);
	T_CHECK(sweep_notify_flags("Elg", out, sizeof(out)) == 1);
	T_STREQ(out, "Elgx");
	T_CHECK(sweep_notify_flags(NULL, out, sizeof(out)) == 1);
	T_CHECK(sweep_notify_flags("Kg", out, 4) == -1);
}
