// The scenarios measure failure detection in real time; running them one at a time keeps a loaded
// 2-core machine from starving heartbeats and turning a slow test into a false failure.
[assembly: Xunit.v3.Parallelization(Mode = Xunit.Sdk.ParallelMode.None)]
