#include <stdio.h>

int main(void)
{
	fputs("chanfs: not built yet\n", stderr);
	return 1;
}
