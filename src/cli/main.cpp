#include <cstdio>
int main() { std::puts("muse"); return 0; }
