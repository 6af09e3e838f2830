#include "gitgate/cli.h"

int cmd_mint(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return cli_fail("mint", "not implemented yet");
}
