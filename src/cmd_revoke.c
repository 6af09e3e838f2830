#include "gitgate/cli.h"

int cmd_revoke(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return cli_fail("revoke", "not implemented yet");
}
