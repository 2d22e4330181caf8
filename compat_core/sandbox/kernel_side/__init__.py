"""Code that runs inside the sandbox, in the kernel's interpreter (mounted read-only at
`/opt/compat/kernel_side`). Never imported by the server: it may import only the standard
library and the sandbox environment's packages (ipykernel)."""
