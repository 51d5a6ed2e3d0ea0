// Node module-resolution hook used only by the TF.js reference side (registered in setup.ts): lets Node load
// tfjs-core's ESM build (dist/*.js), whose relative imports omit the ".js" extension, so that its
// gradient registrations (dist/register_all_gradients.js, absent from the CommonJS node bundle) can be
// imported. Every other import resolves unchanged.

export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (e) {
    const code = e && typeof e === "object" ? e.code : undefined;
    const inTfjsCore = typeof context.parentURL === "string" && context.parentURL.includes("/@tensorflow/tfjs-core/dist/");
    if ((code === "ERR_MODULE_NOT_FOUND" || code === "ERR_UNSUPPORTED_DIR_IMPORT") && inTfjsCore && specifier.startsWith("."))
      return next(`${specifier}.js`, context);
    throw e;
  }
}
