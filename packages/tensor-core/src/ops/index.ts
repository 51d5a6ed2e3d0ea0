// Every op as a free function.
export * from "./elementwise.js";
export * from "./reduce.js";
export * from "./movement.js";
export * from "./matmul.js";
export * from "./nn.js";
export * from "./lm-head-loss.js";
export * from "./quad-form-mse.js";
