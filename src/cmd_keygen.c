#include "gitgate/cli.h"

int cmd_keygen(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return cli_fail("keygen", "not implemented yet");
}
