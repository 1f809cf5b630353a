/* t_images.c: unit tests of common/images.c's pure parts: allowlist, source resolution, Gitea JSON. */
#include "tests/unit/t.h"

#include <string.h>

#include "common/conf.h"
#include "common/gitea.h"
#include "common/images.h"

void
test_images__allowlist(void)
{
	struct conf c;

	memset(&c, 0, sizeof(c));
	T_CHECK(images_runtime_known(&c, "langgraph"));
	T_CHECK(images_runtime_known(&c, "codex"));
	T_CHECK(!images_runtime_known(&c, "echo"));
	T_CHECK(!images_runtime_known(&c, "external"));
	T_CHECK(!images_runtime_known(&c, ""));
	T_CHECK(!images_runtime_known(&c, NULL));
	c.extra_runtimes = " echo ,broken,, x.y ";
	T_CHECK(images_runtime_known(&c, "echo"));
	T_CHECK(images_runtime_known(&c, "broken"));
	T_CHECK(images_runtime_known(&c, "x.y"));
	T_CHECK(!images_runtime_known(&c, "ech"));
	T_CHECK(!images_runtime_known(&c, "echo,broken"));
	c.extra_runtimes = "../x,Echo,a b,external,-x";
	T_CHECK(!images_runtime_known(&c, "../x"));
	T_CHECK(!images_runtime_known(&c, "Echo"));
	T_CHECK(!images_runtime_known(&c, "a b"));
	T_CHECK(!images_runtime_known(&c, "external"));
	T_CHECK(!images_runtime_known(&c, "-x"));
}

void
test_images__resolve(void)
{
	struct images_source s;
	struct conf c;

	memset(&c, 0, sizeof(c));
	c.image_registry = "";
	c.local_template_repo_prefix = "https://git.example/molecule-ai/molecule-ai-workspace-template-";
	T_CHECK(images_resolve(&c, &s) == 0);
	T_CHECK(s.mode == IMAGES_LOCAL_BUILD);
	T_STREQ(s.prefix, "https://git.example/molecule-ai/molecule-ai-workspace-template-");
	c.image_registry = "ghcr.io/molecule-ai//";
	T_CHECK(images_resolve(&c, &s) == 0);
	T_CHECK(s.mode == IMAGES_REGISTRY);
	T_STREQ(s.prefix, "ghcr.io/molecule-ai");
}

void
test_images__parse_gitea_branch(void)
{
	const char *ok = "{\"name\":\"main\",\"commit\":{\"id\":\"E31DC7EE06BA7142DF159BE4EAE65388BE1E62E5\"}}";
	const char *bad[] = {
		"", "[]", "{}", "{\"commit\":null}", "{\"commit\":{\"id\":5}}",
		"{\"commit\":{\"id\":\"e31dc7ee\"}}",
		"{\"commit\":{\"id\":\"../../../../../../../../../../../../../../x\"}}",
		"{\"commit\":{\"id\":\"e31dc7ee06ba7142df159be4eae65388be1e62e5\"}} trailing",
		"{\"commit\":{\"id\":\"e31dc7ee06ba7142df159be4eae65388be1e62e5\"}", NULL
	};
	char sha[65];
	size_t i;

	T_CHECK(gitea_parse_branch(ok, strlen(ok), sha, sizeof(sha)) == 0);
	T_STREQ(sha, "e31dc7ee06ba7142df159be4eae65388be1e62e5");
	T_CHECK(gitea_parse_branch(ok, strlen(ok), sha, 40) == -1);
	for (i = 0; bad[i] != NULL; i++) {
		T_CHECK(gitea_parse_branch(bad[i], strlen(bad[i]), sha, sizeof(sha)) == -1);
		T_STREQ(sha, "");
	}
}
